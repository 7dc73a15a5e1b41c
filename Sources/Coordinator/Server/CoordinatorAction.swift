import Shared

/// What the core asks its shell to do. Sends are performed after the batch's store
/// changes commit.
enum CoordinatorAction: Sendable {
  case store(StoreChange)
  case send(peer: [UInt8], WireEnvelope)
  /// Send `assign` for this attempt; the shell reads the job's script and bundle
  /// from the store, which the core does not keep in memory.
  case assign(peer: [UInt8], jobID: Int64, attempt: Int, gpuIndices: [Int])
}
