"""golfprof.dashboards: ``golfprof dashboard PATH... -o report.html``.

runs (PATH -> run directories, read once) -> timeline (trace -> lanes and comm overlap, via
golfprof.traces), data (comparison and trend frames, via golfprof.results.stats/regress) and
diffs (baseline run vs others, via golfprof.traces.diff) -> charts (plotly figures) and tables
(the same numbers) -> page (one self-contained HTML file); report composes them, command is the CLI.
"""
