/// Client requests carry a `requestID` that the reply echoes, so a client that gave
/// up on one request never mistakes its late reply for the next one's.

public struct SubmitRequest: Sendable, Codable {
  public var requestID: String
  public var name: String
  public var entry: String
  public var args: JSONValue
  public var requirements: Requirements
  public var priority: Int
  public var retries: Int
  public var timeoutSeconds: Double?
  public var artifacts: [String]
  /// One job per index, each seeing it as `args.index`; nil for a single job.
  public var arrayIndices: [Int]?
  /// Who submitted it: the name of the client key the connection was admitted with. Set
  /// by the coordinator (whatever a client puts here is replaced); nil without keys.
  public var owner: String?

  public init(
    requestID: String, name: String, entry: String, args: JSONValue, requirements: Requirements,
    priority: Int, retries: Int, timeoutSeconds: Double?, artifacts: [String], arrayIndices: [Int]?
  ) {
    self.requestID = requestID
    self.name = name
    self.entry = entry
    self.args = args
    self.requirements = requirements
    self.priority = priority
    self.retries = retries
    self.timeoutSeconds = timeoutSeconds
    self.artifacts = artifacts
    self.arrayIndices = arrayIndices
  }
}

public struct SubmitReply: Sendable, Codable {
  public var id: String
  public var ids: [String]
  public init(id: String, ids: [String]) {
    self.id = id
    self.ids = ids
  }
}

public struct JobRequest: Sendable, Codable {
  public var requestID: String
  public var jobID: String
  public init(requestID: String, jobID: String) {
    self.requestID = requestID
    self.jobID = jobID
  }
}

public struct JobsRequest: Sendable, Codable {
  public var requestID: String
  public var state: JobState?
  public var worker: String?
  /// Only the jobs of this array (its id is the first job's id).
  public var array: String?
  public var limit: Int?
  public init(requestID: String, state: JobState?, worker: String?, limit: Int?) {
    self.requestID = requestID
    self.state = state
    self.worker = worker
    self.limit = limit
  }
}

public struct LogsRequest: Sendable, Codable {
  public var requestID: String
  public var jobID: String
  /// Lines with a sequence number greater than this.
  public var since: Int
  public var limit: Int
  public init(requestID: String, jobID: String, since: Int, limit: Int) {
    self.requestID = requestID
    self.jobID = jobID
    self.since = since
    self.limit = limit
  }
}

public struct LogsReply: Sendable, Codable {
  public var lines: [LogLineView]
  public var state: JobState
  /// True once the job is final and every line of its last attempt is stored.
  public var complete: Bool
  public init(lines: [LogLineView], state: JobState, complete: Bool) {
    self.lines = lines
    self.state = state
    self.complete = complete
  }
}

public struct CancelRequest: Sendable, Codable {
  public var requestID: String
  public var jobIDs: [String]
  /// Cancel every job of this array as well.
  public var array: String?
  public init(requestID: String, jobIDs: [String]) {
    self.requestID = requestID
    self.jobIDs = jobIDs
  }
}

public struct CancelReply: Sendable, Codable {
  public var cancelled: [String]
  public var alreadyFinal: [String]
  public init(cancelled: [String], alreadyFinal: [String]) {
    self.cancelled = cancelled
    self.alreadyFinal = alreadyFinal
  }
}

public struct WorkersRequest: Sendable, Codable {
  public var requestID: String
  public init(requestID: String) { self.requestID = requestID }
}

public struct DrainRequest: Sendable, Codable {
  public var requestID: String
  /// A worker's name or id.
  public var worker: String
  public init(requestID: String, worker: String) {
    self.requestID = requestID
    self.worker = worker
  }
}

/// The reply to any client request: the request id plus one result value.
public struct Reply<Result: Codable & Sendable>: Sendable, Codable {
  public var requestID: String
  public var result: Result
  public init(requestID: String, result: Result) {
    self.requestID = requestID
    self.result = result
  }
}

public struct ErrorReply: Sendable, Codable {
  public var requestID: String?
  public var message: String
  public init(requestID: String?, message: String) {
    self.requestID = requestID
    self.message = message
  }
}

/// Any request's id, read before knowing its type, so even a request whose header
/// does not match its type gets an error reply the client can match.
public struct RequestIDOnly: Sendable, Codable {
  public var requestID: String?
}
