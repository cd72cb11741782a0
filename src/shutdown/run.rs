//! Running the order: `hostform shutdown` and `hostform start`.
