"""Tiny NWB files written with the real pynwb writer (NWBHDF5IO)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np


def write_nwb(path, *, with_responses: bool = True, n_rois: int = 3, rate: float = 20.0, seconds: float = 6.0,
              nan_at: float | None = None, colour: bool = False,
              treadmill_nan_at: float | None = None):
    """A 6 s session: responses at ``rate`` Hz (ROI k = k * t), treadmill at 50 Hz (= 2 t),
    pupil minor/major radius 1 and 3, eye position (t, -t), a 5 Hz ImageSeries whose frame f is
    all f, and intervals Clip (0-1 s, 2-3 s same clip; 4-5 s another) and Monet2 (1.5-2 s)."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import EyeTracking, PupilTracking, SpatialSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.image import ImageSeries
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

    nwb = NWBFile(session_description="tiny", identifier="s1",
                  session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc), session_id="4",
                  subject=Subject(subject_id="17797", species="Mus musculus"))
    dev = nwb.create_device(name="scope")
    channel = OpticalChannel(name="ch", description="green", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(name="plane", optical_channel=channel, description="2p", device=dev,
                                     excitation_lambda=920.0, imaging_rate=rate, indicator="GCaMP6s",
                                     location="VISp")
    seg = ImageSegmentation()
    ps = seg.create_plane_segmentation(description="rois", imaging_plane=plane, name="PlaneSegmentation")
    ps.add_column(name="pt_root_id", description="EM root id")
    ps.add_column(name="pt_x_position", description="x")
    for k in range(n_rois):
        ps.add_roi(image_mask=np.ones((2, 2)), pt_root_id=100 + k if k else 0, pt_x_position=10.0 * k)
    ophys = nwb.create_processing_module(name="ophys", description="ophys")
    ophys.add(seg)
    t = np.arange(int(seconds * rate)) / rate
    if with_responses:
        region = ps.create_roi_table_region(description="all", region=list(range(n_rois)))
        data = t[:, None] * np.arange(n_rois)[None, :]
        if nan_at is not None:
            data[int(nan_at * rate), 0] = np.nan
        ophys.add(Fluorescence(roi_response_series=RoiResponseSeries(name="deconvolved", data=data, rois=region, unit="a.u.",
                                                                      rate=rate)))
    tt = np.arange(int(seconds * 50)) / 50
    run = 2 * tt
    if treadmill_nan_at is not None:
        run[int(treadmill_nan_at * 50)] = np.nan
    nwb.add_acquisition(TimeSeries(name="treadmill_velocity", data=run, unit="cm/s", timestamps=tt))
    nwb.add_acquisition(PupilTracking(time_series=[TimeSeries(name="pupil_minor_radius", data=np.ones_like(tt), unit="px", timestamps=tt),
                                                   TimeSeries(name="pupil_major_radius", data=3 * np.ones_like(tt),
                                                              unit="px", timestamps=tt)]))
    nwb.add_acquisition(EyeTracking(spatial_series=SpatialSeries(name="eye_position", data=np.stack([tt, -tt], 1),
                                                                 reference_frame="origin", timestamps=tt)))
    ts = np.arange(int(seconds * 5)) / 5
    frames = (np.ones((len(ts), 4, 6)) * np.arange(len(ts))[:, None, None]).astype(np.uint8)
    if colour:  # RGB frames whose grey mean is f: channels f-1, f, f+1 (frame 0: 0, 0, 0)
        frames = np.stack([np.maximum(frames.astype(int) - 1, 0) + (frames == 0), frames, frames + 1 - (frames == 0)],
                          axis=-1).astype(np.uint8)
    nwb.add_stimulus(ImageSeries(name="movie", data=frames, unit="n.a.", timestamps=ts))
    clip = TimeIntervals(name="Clip", description="natural movies")
    clip.add_column(name="condition_hash", description="clip id")
    for a, b, h in ((0.0, 1.0, "A"), (2.0, 3.0, "A"), (4.0, 5.0, "B"), (5.0, 5.8, "C")):
        clip.add_interval(start_time=a, stop_time=b, condition_hash=h)
    monet = TimeIntervals(name="Monet2", description="noise")
    monet.add_interval(start_time=1.5, stop_time=2.0)
    nwb.add_time_intervals(clip)
    nwb.add_time_intervals(monet)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
