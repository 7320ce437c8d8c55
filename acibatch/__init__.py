"""acibatch domain: pure, typed, importable without Azure Functions."""
