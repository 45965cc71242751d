"""The real body: stereo cameras, the serial link to the microcontroller, a virtual MCU, reference firmware.

Not built yet (issue: "The real body"). The package exists so the layout and
the distribution are in place; nothing here pretends to work.
"""
