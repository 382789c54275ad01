"""IVR flows as data: the flow language (model), the checks engineers run (validate), the
interpreter shared by the simulator and the FastAGI runtime (engine), and pictures (graph)."""
