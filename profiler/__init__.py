"""golfprof.profiler"""
