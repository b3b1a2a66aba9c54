"""Object engine: 6D object pose by SE(3) diffusion registration (Jiang et al., NeurIPS 2023).

``diffusion`` (schedule, forward noising, reverse sampler), ``denoiser`` (invariant point
features, annealed soft matching, weighted Kabsch), ``training_data`` / ``train`` (rendered
views, loss, ``posekit train registration``), ``scoring`` (hypothesis fit), ``segmentation``
(tabletop fallback), ``baselines`` (open3d / small_gicp peers and ICP refinement),
``estimator`` (:class:`~posekit.registration.estimator.ObjectPoseEstimator`), ``bop_predict``
(``posekit predict bop``).
"""
