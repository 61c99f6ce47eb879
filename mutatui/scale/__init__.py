"""Scale-out: one screen split into parts and run by many workers on a Ray cluster.

`worker` is the work of one worker and never imports Ray; `ray_runner` is the driver and the
only module that does, so the base install runs without Ray.
"""
