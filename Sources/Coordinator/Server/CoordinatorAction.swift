import Foundation
import Shared

/// What the core asks its shell to do. Sends are performed after the batch's store
/// changes commit.
enum CoordinatorAction: Sendable {
  case store(StoreChange)
  case send(peer: [UInt8], WireEnvelope)
  /// Send `assign` for this attempt; the shell reads the job's script and bundle
  /// from the store, which the core does not keep in memory.
  case assign(peer: [UInt8], jobID: Int64, attempt: Int, gpuIndices: [Int])
  /// Take an artifact message of a current attempt: the shell writes the file and
  /// sends the acknowledgement once the batch commits.
  case artifact(ArtifactOperation)
}

enum ArtifactOperation: Sendable {
  case begin(peer: [UInt8], jobID: Int64, ArtifactBeginMessage)
  case chunk(peer: [UInt8], jobID: Int64, ArtifactChunkMessage, Data)
  /// The attempt's cleanup is reported, so no upload of it continues: drop its partial
  /// files and the space reserved for them.
  case settle(jobID: Int64, attempt: Int)
}
