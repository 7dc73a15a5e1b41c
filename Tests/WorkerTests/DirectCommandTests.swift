import Foundation
import Synchronization
import Testing

@testable import Worker

@Suite struct DirectCommandTests {
  let path = "/usr/bin:/bin"

  func direct(_ command: String, cwd: String = "/", env: [String: String]? = nil) -> DirectCommand? {
    DirectCommand(
      ShellCommandRequest(command: command, workingDirectory: cwd, environment: env ?? ["PATH": path]))
  }

  /// The first executable file named `name` on this machine's `/usr/bin:/bin`.
  func located(_ name: String) -> String? {
    ["/usr/bin/", "/bin/"].map { $0 + name }.first { access($0, X_OK) == 0 }
  }

  @Test func aPlainCommandIsSplitAndFoundOnPath() throws {
    let command = try #require(direct("echo job\t42  --quiet a=b x,y:z@1%2+3"))
    #expect(command.executable == located("echo"))
    #expect(command.arguments == ["job", "42", "--quiet", "a=b", "x,y:z@1%2+3"])
    #expect(command.environment == ["PATH": path, "PWD": "/", "SHLVL": "0", "_": command.executable])
    #expect(direct("true")?.arguments == [])
    #expect(direct("echo hi", env: ["PATH": path, "SHLVL": "3"])?.environment["SHLVL"] == "3")
  }

  @Test(arguments: [
    "echo $HOME", "echo \"a b\"", "echo 'a'", "echo a\\ b", "true && echo a", "true; echo a",
    "echo a | cat", "echo a > f", "ls *", "ls ?", "ls [ab]", "ls ~", "echo {a,b}", "echo a # b",
    "echo `id`", "(echo a)", "echo a &", "echo a\necho b", "! true", "eché",
  ])
  func shellSyntaxGoesToBash(command: String) {
    #expect(direct(command) == nil)
  }

  @Test(arguments: [
    "cd /tmp", "source env.sh", ". env.sh", "export A=1", "exit 3", "time ls", "pwd", "test -f x",
    "kill 1", "printf a", "read x", "set -e", "exec ls", "command ls", "type ls", "FOO=1 env",
    "echo --help", "echo a --version", "if", "for",
  ])
  func keywordsBuiltinsAndAssignmentsGoToBash(command: String) {
    #expect(direct(command) == nil)
  }

  @Test func anEnvironmentBashReadsAtStartGoesToBash() {
    for extra in ["BASH_ENV", "SHELLOPTS", "BASHOPTS", "BASH_FUNC_ls%%"] {
      #expect(direct("ls", env: ["PATH": path, extra: "x"]) == nil, "\(extra)")
    }
    #expect(direct("ls", env: [:]) == nil)
    #expect(direct("ls", env: ["PATH": "~/bin:" + path]) == nil)
    #expect(direct("no-such-program-here") == nil)
  }

  @Test func programsAreFoundAsBashFindsThem() throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    try FileManager.default.createDirectory(atPath: dir.file("a"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir.file("b"), withIntermediateDirectories: true)
    try dir.write("a/tool", "#!/bin/sh\necho a\n")  // not executable: skipped
    try dir.write("b/tool", "#!/bin/sh\necho b\n")
    chmod(dir.file("b/tool"), 0o755)
    try dir.write("run.sh", "#!/bin/sh\necho run\n")
    chmod(dir.file("run.sh"), 0o755)
    try dir.write("bare.sh", "echo bare\n")  // no #!: bash runs it as its own script
    chmod(dir.file("bare.sh"), 0o755)

    let env = ["PATH": "a:\(dir.path)/b:"]
    #expect(direct("tool", cwd: dir.path, env: env)?.executable == dir.file("b/tool"))
    #expect(direct("./run.sh x", cwd: dir.path)?.executable == dir.file("./run.sh"))
    #expect(direct("\(dir.path)/run.sh", cwd: "/")?.executable == dir.file("run.sh"))
    // An empty PATH entry is the working directory.
    #expect(direct("run.sh", cwd: dir.path, env: env)?.executable == dir.file("run.sh"))
    #expect(direct("bare.sh", cwd: dir.path, env: env) == nil)
    #expect(direct("./bare.sh", cwd: dir.path) == nil)
    #expect(direct("./missing.sh", cwd: dir.path) == nil)
    #expect(direct("a", cwd: dir.path, env: env) == nil)  // a folder
  }

  /// What the program sees is what it would see from `bash -c`: the same output, down
  /// to the environment (`env;` goes to bash, `env` does not).
  @Test func theProgramSeesWhatBashWouldGiveIt() async throws {
    let dir = try WorkerTestDirectory()
    defer { dir.remove() }
    let environment = ["PATH": path, "FOO": "bar baz", "SHLVL": "2"]
    func output(_ command: String) async throws -> [String] {
      let lines = Mutex<[String]>([])
      let outcome = try await ShellProcess.run(
        ShellCommandRequest(command: command, workingDirectory: dir.path, environment: environment)
      ) { stream, line in
        lines.withLock { $0.append("\(stream.rawValue): \(line.text)") }
        return .continue_
      }
      guard case .exited(0) = outcome else {
        Issue.record("\(command): \(outcome)")
        return []
      }
      return lines.withLock { $0 }.sorted()
    }
    #expect(
      DirectCommand(ShellCommandRequest(command: "env", workingDirectory: dir.path, environment: environment))
        != nil)
    let direct = try await output("env")
    #expect(direct == (try await output("env;")))
    #expect(direct.contains("stdout: PWD=\(dir.path)"))
    #expect(try await output("echo a  b") == (try await output("echo a  b;")))
  }

  @Test func exitStatusIsTheProgramsOwn() async throws {
    let request = { (command: String) in
      ShellCommandRequest(command: command, workingDirectory: "/", environment: ["PATH": path])
    }
    guard case .exited(1) = try await ShellProcess.run(request("false"), onLine: { _, _ in .continue_ })
    else {
      Issue.record("false did not exit 1")
      return
    }
    // Not found: bash says so, with its status.
    let lines = Mutex<[String]>([])
    let outcome = try await ShellProcess.run(request("no-such-program-here")) { _, line in
      lines.withLock { $0.append(line.text) }
      return .continue_
    }
    guard case .exited(127) = outcome else {
      Issue.record("not found gave \(outcome)")
      return
    }
    #expect(lines.withLock { $0 }.contains { $0.contains("command not found") })
  }
}
