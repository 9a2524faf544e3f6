"""circlebot: a study-circle bot for Discord, Matrix and the terminal."""

__version__ = "0.1.0"
