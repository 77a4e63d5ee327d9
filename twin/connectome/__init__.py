"""twin.connectome"""
