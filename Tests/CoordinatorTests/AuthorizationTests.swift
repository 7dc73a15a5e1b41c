import Shared
import Testing

@testable import Coordinator

@Suite struct AuthorizationTests {
  private let worker = PeerIdentity(role: .worker, name: "edge-3")
  private let client = PeerIdentity(role: .client, name: "alice")
  private let admin = PeerIdentity(role: .admin, name: "bob")

  @Test func eachRoleSendsOnlyItsOwnMessages() {
    for type in [MessageType.register, .heartbeat, .logBatch, .progress, .finished, .cleanup] {
      #expect(Authorization.refusal(type, from: worker) == nil)
      #expect(Authorization.refusal(type, from: client) != nil)
      #expect(Authorization.refusal(type, from: admin) != nil)
    }
    for type in [MessageType.submit, .status, .jobs, .logs, .workers, .cancel] {
      #expect(Authorization.refusal(type, from: worker) != nil)
      #expect(Authorization.refusal(type, from: client) == nil)
      #expect(Authorization.refusal(type, from: admin) == nil)
    }
    for type in [MessageType.drain, .undrain] {
      #expect(
        Authorization.refusal(type, from: client)
          == "client alice may not send \(type.rawValue): that needs an admin key")
      #expect(Authorization.refusal(type, from: admin) == nil)
    }
    #expect(
      Authorization.refusal(.submit, from: worker)
        == "worker edge-3 may not send submit: that needs a client or admin key")
    #expect(Authorization.refusal(.submit, from: nil) != nil)
  }

  @Test func clientsCancelTheirOwnJobsAdminsAny() {
    #expect(Authorization.mayCancel(client, jobOwner: "alice"))
    #expect(!Authorization.mayCancel(client, jobOwner: "carol"))
    #expect(!Authorization.mayCancel(client, jobOwner: nil))
    #expect(Authorization.mayCancel(admin, jobOwner: "carol"))
    #expect(Authorization.mayCancel(admin, jobOwner: nil))
    #expect(!Authorization.mayCancel(worker, jobOwner: "edge-3"))
  }

  @Test func submitRateIsATokenBucketPerClient() {
    var limiter = SubmitRateLimiter(rate: 2, burst: 3)
    for _ in 0..<3 { #expect(limiter.take("alice", now: 0) == nil) }
    #expect(limiter.take("alice", now: 0) == 0.5)
    // Others are not held back by alice.
    #expect(limiter.take("carol", now: 0) == nil)
    #expect(limiter.take("alice", now: 0.5) == nil)
    #expect(limiter.take("alice", now: 0.5) != nil)
    // Refills up to the burst, not beyond.
    for _ in 0..<3 { #expect(limiter.take("alice", now: 100) == nil) }
    #expect(limiter.take("alice", now: 100) != nil)
    var unlimited = SubmitRateLimiter(rate: 0, burst: 1)
    for _ in 0..<1000 { #expect(unlimited.take("x", now: 0) == nil) }
  }
}
