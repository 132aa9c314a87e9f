"""What the middleware says at startup: likely mistakes in the options (`advice`, sans I/O), and
whether the emulator and Redis answer (`reachability`)."""
