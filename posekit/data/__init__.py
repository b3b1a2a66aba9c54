"""Synthetic data: procedural object meshes (:mod:`~posekit.data.meshes`), a CPU renderer
(:mod:`~posekit.data.render`), a calibrated depth sensor model (:mod:`~posekit.data.sensor`,
:mod:`~posekit.data.sensor_calibration`) and BOP-format scenes (:mod:`~posekit.data.scenes`)."""
