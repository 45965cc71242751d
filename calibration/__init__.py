"""Stereo camera calibration and rectification, sensor calibration.

Not built yet (roadmap item 7). The package exists so the layout and the
distribution are in place; nothing here pretends to work.
"""
