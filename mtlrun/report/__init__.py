"""Reading run folders and reporting on them (`mtlrun report`, `mtlrun list`).

Import from the modules: `runs` needs no torch, so `mtlrun list` starts quickly; `build`
(Δm needs the tasks' metric directions) imports torch."""
