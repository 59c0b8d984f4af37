"""golfprof.model"""
