"""View engine: single-image SO(3) orientation distributions (induced representations, I2S head).

Modules: :mod:`~posekit.geometry.so3_grid` (HEALPix SO(3) grids, nearest lookup; in geometry so data can use them),
:mod:`~posekit.view.so3_fourier` (Wigner-D matrices and harmonics in escnn's real basis),
:mod:`~posekit.view.distribution` (grid distribution: mode, sampling, log-likelihood, plot),
:mod:`~posekit.view.network` (escnn encoder, induction layer, S2/SO(3) convolutions),
:mod:`~posekit.view.training` (config + ``posekit train view``),
:mod:`~posekit.view.estimator` (:class:`ViewPoseEstimator`).

Rotation convention: a label is ``R_cam_obj`` (3x3), mapping object coordinates into the
camera frame (x right, y down, z forward); it is egocentric for centred objects.
"""
