import Foundation
import Shared
import Testing

/// Artifacts end to end: a job's declared outputs travel from the worker's workspace to
/// the coordinator in checksummed chunks before cleanup, survive a coordinator crash in
/// the middle of the upload, and come back intact with `pinpool artifacts --download`.
@Suite(.serialized) struct ArtifactTests {
  /// The SHA-256 a job printed with `sha256sum NAME`, from its log.
  static func printedDigest(_ lines: [String], name: String) -> String? {
    for line in lines {
      let parts = line.split(separator: " ", omittingEmptySubsequences: true)
      if parts.count == 2, parts[1] == Substring(name), parts[0].count == 64 { return String(parts[0]) }
    }
    return nil
  }

  static func sha256(ofFile path: String) throws -> String {
    try FileDigest.sha256(path: path).sha256
  }

  @Test func aRenderedVideoComesBackIntactAndTheWorkspaceGoes() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("render", runtime: true)
      // The script declares the video; `--artifact` adds the notes (the two are joined).
      let script = try writeScript(
        """
        {
          "run": [
            { "method": "shell.run", "params": { "message": [
              "mkdir -p out",
              "ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=duration=1:size=160x120:rate=10 -pix_fmt yuv420p out/clip.mp4",
              "sha256sum out/clip.mp4",
              "echo rendered > notes.txt"
            ] } }
          ],
          "artifacts": ["out/*.mp4"]
        }
        """, in: pool.directory)
      let id = try pool.submit([script, "--artifact", "notes.txt"])
      // The first use of the shared runtime may install it from PyPI.
      let view = try pool.waitForFinal(id, timeout: 300)
      let lines = try pool.logLines(id).map(\.line)
      #expect(view.state == .succeeded, "\(view.error ?? "") \(lines)\n\(pool.daemonLogs())")
      #expect(view.cleanup.state == .done, "\(view.cleanup)")
      let printed = try #require(Self.printedDigest(lines, name: "out/clip.mp4"), "\(lines)")

      let listed: [ArtifactView] = try pool.json(["artifacts", id])
      #expect(listed.map(\.name) == ["notes.txt", "out/clip.mp4"])
      let clip = try #require(listed.first { $0.name == "out/clip.mp4" })
      #expect(clip.sha256 == printed)
      #expect(clip.attempt == 1)
      #expect(clip.size > 0)
      // The human listing names each file with its size and digest.
      let table = pool.cli(["artifacts", id])
      #expect(table.status == 0)
      #expect(table.stdout.contains("out/clip.mp4") && table.stdout.contains(printed))

      let folder = pool.directory.appendingPathComponent("download").path
      let download = pool.cli(["artifacts", id, "--download", folder])
      #expect(download.status == 0, "\(download.stderr)")
      #expect(try Self.sha256(ofFile: folder + "/out/clip.mp4") == printed)
      #expect(try String(contentsOfFile: folder + "/notes.txt", encoding: .utf8) == "rendered\n")
      // The workspace is gone once its artifacts are stored.
      #expect(!FileManager.default.fileExists(atPath: pool.workerRoot("render") + "/jobs/\(id)-1"))

      // A symbolic link planted in the download folder does not carry a file elsewhere.
      let trap = pool.directory.appendingPathComponent("trap").path
      let elsewhere = pool.directory.appendingPathComponent("elsewhere").path
      try FileManager.default.createDirectory(atPath: trap, withIntermediateDirectories: true)
      try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
      try FileManager.default.createSymbolicLink(atPath: trap + "/out", withDestinationPath: elsewhere)
      let trapped = pool.cli(["artifacts", id, "--download", trap])
      #expect(trapped.status != 0)
      #expect(trapped.stderr.contains("is not a folder"), "\(trapped.stderr)")
      #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)

      // Specific errors: an unknown job, and a download folder that is a file.
      let unknown = pool.cli(["artifacts", "9999"])
      #expect(unknown.status != 0)
      #expect(unknown.stderr.contains("no job '9999'"))
      let file = pool.directory.appendingPathComponent("a-file").path
      try "x".write(toFile: file, atomically: true, encoding: .utf8)
      let intoFile = pool.cli(["artifacts", id, "--download", file])
      #expect(intoFile.status != 0)
      #expect(intoFile.stderr.contains("--download"))
    }
  }

  @Test func anUploadSurvivesACoordinatorCrashAndResumes() throws {
    try withPool { pool in
      try pool.startCoordinator()
      // 1.5 MB at 200 kB/s: several seconds of upload, so the crash lands in the middle.
      try pool.startWorker("laptop", extra: ["--upload-rate", "200kB"])
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
          "head -c 1500000 /dev/urandom > big.bin",
          "sha256sum big.bin"
        ] } } ], "artifacts": ["big.bin"] }
        """, in: pool.directory)
      let id = try pool.submit([script])
      let partials = pool.dataDirectory + "/artifacts/\(id)/1/partial"
      var heldAtKill: Int64 = 0
      try pool.waitUntil("the coordinator holds part of the upload", timeout: 60) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: partials)) ?? []
        let sizes = names.compactMap {
          (try? FileManager.default.attributesOfItem(atPath: partials + "/" + $0)[.size]) as? Int64
        }
        heldAtKill = sizes.max() ?? 0
        return heldAtKill > 0
      }
      // Mid-upload: the job already reported its result, its cleanup waits for the upload.
      let during = try pool.status(id)
      #expect(during.cleanup.state == .pending)
      #expect(during.cleanup.reason?.contains("uploading artifacts: big.bin") == true, "\(during.cleanup)")
      pool.killCoordinator()
      #expect(heldAtKill < 1_500_000)

      try pool.startCoordinator()
      let view = try pool.waitForFinal(id, timeout: 90)
      let lines = try pool.logLines(id).map(\.line)
      #expect(view.state == .succeeded, "\(lines)")
      #expect(view.cleanup.state == .done, "\(view.cleanup)\n\(pool.daemonLogs())")
      let printed = try #require(Self.printedDigest(lines, name: "big.bin"), "\(lines)")
      let listed: [ArtifactView] = try pool.json(["artifacts", id])
      #expect(listed.map(\.name) == ["big.bin"])
      #expect(listed.first?.size == 1_500_000)
      #expect(listed.first?.sha256 == printed)
      // It went on from what the coordinator held, not from the start.
      #expect(pool.daemonLogs().contains("artifact upload resumes"), "\(pool.daemonLogs())")
      // The partial file became the stored one.
      #expect(((try? FileManager.default.contentsOfDirectory(atPath: partials)) ?? []).isEmpty)

      let folder = pool.directory.appendingPathComponent("download").path
      let download = pool.cli(["artifacts", id, "--download", folder, "--json"])
      #expect(download.status == 0, "\(download.stderr)")
      #expect(try Self.sha256(ofFile: folder + "/big.bin") == printed)
      #expect(!FileManager.default.fileExists(atPath: pool.workerRoot("laptop") + "/jobs/\(id)-1"))
    }
  }

  @Test func anUploadSurvivesAWorkerRestartAndResumes() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("laptop", extra: ["--upload-rate", "200kB"])
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
          "head -c 1200000 /dev/urandom > big.bin",
          "sha256sum big.bin"
        ] } } ], "artifacts": ["big.bin"] }
        """, in: pool.directory)
      let id = try pool.submit([script])
      let partials = pool.dataDirectory + "/artifacts/\(id)/1/partial"
      try pool.waitUntil("the coordinator holds part of the upload", timeout: 60) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: partials)) ?? []
        return names.contains {
          ((try? FileManager.default.attributesOfItem(atPath: partials + "/" + $0)[.size]) as? Int64 ?? 0) > 0
        }
      }
      // The worker dies mid-upload; its workspace, the only copy, must outlive it.
      pool.killWorker("laptop")
      #expect(FileManager.default.fileExists(atPath: pool.workerRoot("laptop") + "/jobs/\(id)-1/big.bin"))
      try pool.startWorker("laptop", extra: ["--upload-rate", "200kB"])
      let view = try pool.waitForFinal(id, timeout: 90)
      let lines = try pool.logLines(id).map(\.line)
      #expect(view.state == .succeeded, "\(lines)")
      #expect(view.cleanup.state == .done, "\(view.cleanup)\n\(pool.daemonLogs())")
      let printed = try #require(Self.printedDigest(lines, name: "big.bin"), "\(lines)")
      let listed: [ArtifactView] = try pool.json(["artifacts", id])
      #expect(listed.first?.sha256 == printed)
      #expect(listed.first?.size == 1_200_000)
      #expect(pool.daemonLogs().contains("artifact upload resumes"))
      #expect(!FileManager.default.fileExists(atPath: pool.workerRoot("laptop") + "/jobs/\(id)-1"))
    }
  }

  @Test func anUploadOverTheLimitKeepsTheWorkspaceAndSaysWhy() throws {
    try withPool { pool in
      try pool.startCoordinator(extra: ["--artifact-limit", "4kB"])
      try pool.startWorker("small")
      // A glob that leaves the workspace is refused at submit, naming it.
      let escaping = try writeScript(
        #"{ "run": [ { "method": "log", "params": { "text": "x" } } ], "artifacts": ["../outside/*"] }"#,
        name: "escape.json", in: pool.directory)
      let refused = pool.cli(["submit", escaping])
      #expect(refused.status != 0)
      #expect(refused.stderr.contains("artifact glob '../outside/*' is refused"), "\(refused.stderr)")
      // The coordinator checks what it is sent too (`--artifact` is not part of the script).
      let plain = try writeScript(
        #"{ "run": [ { "method": "log", "params": { "text": "x" } } ] }"#, name: "plain.json",
        in: pool.directory)
      let flagged = pool.cli(["submit", plain, "--artifact", "/etc/*"])
      #expect(flagged.status != 0)
      #expect(flagged.stderr.contains("artifact glob '/etc/*' is refused"), "\(flagged.stderr)")

      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": "head -c 5000 /dev/zero > big.bin" } } ],
          "artifacts": ["big.bin", "nothing/*.png"] }
        """, in: pool.directory)
      let id = try pool.submit([script])
      let view = try pool.waitForFinal(id)
      #expect(view.state == .succeeded)
      #expect(view.cleanup.state == .kept, "\(view.cleanup)")
      let reason = view.cleanup.reason ?? ""
      #expect(reason.contains("artifact upload failed"), "\(reason)")
      #expect(
        reason.contains("job \(id)") && reason.contains("'big.bin'") && reason.contains("per-job limit"))
      #expect(reason.contains("workspace kept at"))
      let workspace = pool.workerRoot("small") + "/jobs/\(id)-1"
      #expect(FileManager.default.fileExists(atPath: workspace + "/big.bin"))
      // The glob that matched nothing is a warning in the job's log.
      let lines = try pool.logLines(id).map(\.line)
      #expect(lines.contains { $0.contains("artifact glob 'nothing/*.png' matched no file") }, "\(lines)")
      // `status` and `artifacts` say so too.
      #expect(pool.cli(["status", id]).stdout.contains("artifact upload failed"))
      let listing = pool.cli(["artifacts", id])
      #expect(listing.status == 0)
      #expect(listing.stdout.contains("no stored artifacts") && listing.stdout.contains("per-job limit"))
    }
  }
}
