"""twin.analysis"""
