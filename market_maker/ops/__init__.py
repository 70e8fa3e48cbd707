"""Running the bot unattended: the multi-symbol supervisor (``supervisor.py``) and other optional parts.

The single bot's operations parts -- notifications, the control API, Prometheus metrics -- start
from ``parts.py``, imported only when one of their settings is on.
"""
