"""Inventory-aware strategies (OrderManager subclasses) and their pure quoting math."""
