"""interlace"""
