"""The echo backends the local target serves: the upstream echo-basic image's HTTP answer
(``http``) and gRPC service (``grpc``), with the wire format they share (``wire``).
"""
