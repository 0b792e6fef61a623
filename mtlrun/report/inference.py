"""Uncertainty over seeds: the 95 % t interval of a mean, the paired t-test of a configuration
against its baseline, and Holm's correction over the configurations tested. Xin et al.
(NeurIPS 2022) and Kurin et al. (NeurIPS 2022) found most reported gains of multi-task
optimisers within seed noise; the report says so where its own runs show it."""

import math
import statistics

ALPHA = 0.05  # of every test, after the correction
LEVEL = 1 - ALPHA  # of every interval
NO_DIFFERENCE = "no detectable difference"
TEST = (
    "Uncertainty: with two or more seeds, a cell is the mean ± the half-width of its 95 % t "
    "interval over seeds (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n, s the sample std). Each multi-task "
    "configuration is tested against its single-task baseline by a paired t-test over seeds: "
    "the per-seed Δm (each run against the baseline run of the same seed) against 0, two-sided. "
    "Runs are paired by seed because a seed fixes both runs' initialisation and data order, so "
    "pairing takes out the noise they share. The p-values are Holm-corrected over the "
    "configurations tested (a 5 % chance, in all, of calling any equal one different); "
    f"p ≥ {ALPHA:.2f} reads “{NO_DIFFERENCE}”, which with few seeds is not evidence of "
    "equality either."
)


def t_interval(values: list[float]) -> list[float] | None:
    """The 95 % t interval [low, high] of the mean of `values`; None for fewer than two or a
    value that is not finite. Equal values give [mean, mean]."""
    if len(values) < 2 or not all(math.isfinite(value) for value in values):
        return None
    from scipy import stats  # imported when used: scipy.stats takes most of a second

    mean, spread = statistics.fmean(values), statistics.stdev(values)
    if spread == 0:
        return [mean, mean]
    half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * spread / math.sqrt(len(values))
    return [mean - half, mean + half]


def paired_p_value(differences: list[float]) -> float | None:
    """The two-sided p-value of a paired t-test, from the per-pair differences (the one-sample
    test of their mean against 0, which is what `scipy.stats.ttest_rel` computes). None for
    fewer than two pairs, a value that is not finite, or differences that are all equal (t is
    then 0/0 or infinite, however few the pairs)."""
    if len(differences) < 2 or not all(math.isfinite(value) for value in differences):
        return None
    if statistics.stdev(differences) == 0:
        return None
    from scipy import stats

    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given: the i-th smallest of
    m is multiplied by m − i + 1, kept at least as large as the ones before it, at most 1."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def verdict(mean: float, p_value: float | None) -> str | None:
    """ "better" or "worse" than the baseline where the corrected test finds a difference (by
    the sign of the mean gain), else NO_DIFFERENCE; None without a test."""
    if p_value is None:
        return None
    if p_value >= ALPHA:
        return NO_DIFFERENCE
    return "better" if mean > 0 else "worse"
