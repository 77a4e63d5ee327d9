"""twin.model"""
