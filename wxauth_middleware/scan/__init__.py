"""Desktop login by scanning with WeChat: the flow (`flow`), its one-time tickets (`tickets`) and
its pages (`pages`)."""
