"""The parts the model and the guide are built from: network blocks and custom distributions."""
