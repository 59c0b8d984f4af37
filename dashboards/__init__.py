"""golfprof.dashboards"""
