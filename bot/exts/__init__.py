"""The Discord features, one cog (or package) per feature; `bot.plugin` loads them all."""
