"""editor chat"""
