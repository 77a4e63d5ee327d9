"""twin.train"""
