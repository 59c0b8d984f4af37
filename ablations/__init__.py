"""golfprof.ablations"""
