"""The wire: signing, REST and WebSocket clients, live tables, typed errors."""
