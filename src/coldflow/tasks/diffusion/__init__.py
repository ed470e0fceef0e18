"""The diffusion study on MNIST: DDPM and cold diffusion.

- :mod:`~coldflow.tasks.diffusion.config`: the config model of a diffusion run.
- :mod:`~coldflow.tasks.diffusion.ddpm`: the DDPM task and what both tasks share.
- :mod:`~coldflow.tasks.diffusion.cold`: the cold-diffusion (blur) task.
- :mod:`~coldflow.tasks.diffusion.findings`: sentences a study page states.
- :mod:`~coldflow.tasks.diffusion.figures`: sample grids, trajectories, samples by epoch.
- :mod:`~coldflow.tasks.diffusion.schedule_figures`: the schedules of runs and configs.
"""
