"""twin.insilico"""
