"""The real body: stereo cameras, the serial link to the microcontroller, a virtual MCU, reference firmware.

    protocol      serial protocol v1 (COBS + CRC-16, sequence numbers, messages); docs/serial-protocol.md
    mcu_link      host side of the link: reader thread, bad-frame counting, silence detection, reconnect, stop on exit
    virtual_mcu   the firmware's behaviour plus a simulated robot behind a real pty; virtual_mcu_cli its command
                  line (`edge-runtime virtual-mcu`, every fault by command); pty_port the simulated cable
    bad_day       `edge-runtime bench bad-day`: the service through a day of faults; day_rig its outside parts
    kinds         ROBOT, the body kind the runtime finds by entry point
    camera        stereo camera interface: replay, OpenCV V4L2, picamera2 (lazy), Jetson GStreamer
    robot         RobotBody: the body contract on real (or virtual) hardware; docs/hardware.md
    firmware/     reference Arduino-compatible firmware; its frame code is tested on the host with g++
    bench         `python -m hardware.bench`: loop rate, serial round trip, bad-frame handling figures
"""
