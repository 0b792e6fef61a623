"""The config layer: every part's schema (its options, their defaults and their checks), one
module per kind of part. Torch-free, so that composing and checking a config, `--help` and
`--cfg job` never wait for PyTorch; each part's module (with its torch code) is imported when
a run builds it."""
