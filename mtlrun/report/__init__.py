"""Reading run folders and reporting on them (`mtlrun report`, `mtlrun list`).

Import from the modules: `runs` needs neither torch nor matplotlib, so `mtlrun list` starts
quickly. Metric directions and primary metrics come from each run's summary.json, so the report
never imports the tasks."""
