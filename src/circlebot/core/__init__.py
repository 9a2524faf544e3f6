"""The platform-free bot: domain values, what the bot says, commands (declarations, parser, binder), the
router and its permission check, the clock, the timeline, recurrence. Imports no feature and no adapter."""
