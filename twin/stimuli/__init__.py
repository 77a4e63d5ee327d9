"""twin.stimuli"""
