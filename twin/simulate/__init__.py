"""twin.simulate"""
