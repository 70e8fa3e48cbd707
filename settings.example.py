# Copy this file to settings.py and edit it. Every setting, with its default and
# meaning, is in settings_base.py; list here only what you change.
from decimal import Decimal

# --- Where to trade -----------------------------------------------------------
# Leave BASE_URL as None to paper trade on the embedded local GTE simulator.
# For a real GTE account:
# BASE_URL = "https://api.gte.io"
# WS_URL = "wss://td.gte.io/ws"
# Keys are best given as environment variables GTE_API_KEY / GTE_API_SECRET.
# API_KEY = "your key"
# API_SECRET = "your secret"

SYMBOL = "BTC_USD"
SETTLECURRENCY = "BTC"
LEVERAGE = Decimal("10")

# --- The ladder -----------------------------------------------------------------
ORDER_PAIRS = 6            # buy/sell pairs on the book
ORDER_START_SIZE = 100     # contracts of the innermost order
ORDER_STEP_SIZE = 100      # each level further out is this much larger
INTERVAL = Decimal("0.005")    # 0.5 % between levels
MIN_SPREAD = Decimal("0.01")   # at least 1 % between our best buy and best sell
RELIST_INTERVAL = Decimal("0.01")

# --- Risk -------------------------------------------------------------------------
CHECK_POSITION_LIMITS = True
MIN_POSITION = -5000
MAX_POSITION = 5000
MAX_DRAWDOWN = Decimal("0.05")  # stop when equity falls 0.05 BTC below its start (0 = off)

# --- Behaviour ----------------------------------------------------------------------
DRY_RUN = False            # True: log the orders, send nothing
LOOP_INTERVAL = 5
LOG_LEVEL = "INFO"
# STRATEGY = "market_maker.custom_strategy:CustomOrderManager"

# --- Operating it (docs/operations.md; each part off until set) ----------------------
# NOTIFY_URLS = ["discord://", "telegram://123456789"]   # secrets: MM_DISCORD_WEBHOOK, MM_TELEGRAM_TOKEN
# CONTROL_ADDRESS = "8765"                                # token: MM_CONTROL_TOKEN (16+ characters)
# METRICS_ADDRESS = "9108"                                # pip install -e '.[ops]'
