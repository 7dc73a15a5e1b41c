/// Every message type of protocol version 1. Adding one is compatible; renaming is not.
public enum MessageType: String, Sendable, Codable, CaseIterable {
  // worker → coordinator
  case register, heartbeat, logBatch, progress, finished, cleanup
  case artifactBegin, artifactChunk
  // coordinator → worker
  case registered, assign, logAck, reportAck, stop, reregister
  case artifactAck
  // client → coordinator
  case submit, status, jobs, logs, workers, cancel, drain, undrain
  case artifacts, artifactFetch
  // coordinator → client (and to a worker when its message was refused)
  case reply, error
}
