"""Running the bot unattended: the multi-symbol supervisor (``supervisor.py``) and other optional parts."""
