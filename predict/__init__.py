"""golfprof.predict: a simulated run directory -> predicted timelines and figures.

costmodel (a collective's time from a calibration table in comm_tables/ or one `golfprof bench comm`
measured) -> replay (pure: a rank's measured timeline plus its recorded collectives -> the predicted one)
-> predict (reads the run directory, writes simulated/predicted.json and the predicted traces, analysed
by golfprof.traces). The producer, ablations/simulate.py, only records; the CLI runs it, then predicts.
--target-gpu: devices (the device table) -> shapes (FLOPs/bytes from a trace's op shapes) -> rescale (roofline
classes and ratios) -> target (each side's roles); interference (per-class slowdown under a collective),
intervals (step spread and the table's ±), breakdown (the step as a sum of causes), compare (variants side by side).
"""
