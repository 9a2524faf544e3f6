"""The platform-free bot: domain values, what the bot says, commands (declarations, parser, binder), what a
handler gets (context), the router and its permission check, the poll lifecycle, the clock, the adapter
boundary, the timeline (plan, compose, deliver), recurrence. Imports no feature and no adapter."""
