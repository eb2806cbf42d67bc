"""Wire formats Parley serves besides OpenAI chat: decoders into the core, encoders out of it."""
