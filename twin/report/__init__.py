"""twin.report"""
