"""The qwex Slurm backend: one sbatch job per run, its batch step the self-contained agent."""
