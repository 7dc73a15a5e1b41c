#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A `shell.run` command that bash would only split into words and exec, run without
/// starting bash first, as GNU make does for a recipe line with no shell syntax.
///
/// Why: `bash -c 'python app.py'` parses the line and then execs `python` in its own
/// place (the last command of `-c` replaces the shell), so the process, its group, its
/// exit status and its signals are the same either way. Starting bash first costs about
/// 0.4 ms of CPU per command here, a third of a trivial job's whole cost on a 2-core worker.
///
/// What must hold, or the command goes to bash as before:
/// - only letters, digits, spaces, tabs and `-_./:,+@%=` (no quoting, expansion,
///   redirection, globbing, comment, list or pipe), and no `=` in the first word (an
///   assignment);
/// - the first word is no bash keyword or builtin, except `echo`, `true` and `false`,
///   whose programs print and exit alike (`echo` with `--help` or `--version`, which
///   only the program reads, goes to bash);
/// - the environment sets nothing bash reads at start (`BASH_ENV`, `SHELLOPTS`,
///   `BASHOPTS`, exported functions) and has a `PATH` with no `~` entry (bash expands it);
/// - the program is found as bash would find it (a path with `/` is taken from the
///   working directory, else the first executable file on `PATH`) and starts with `#!`
///   or is an ELF binary (bash runs any other file as a script of its own).
///
/// The program gets the environment bash would hand it: `PWD` the working directory,
/// `SHLVL` as given (else `0`), and `_` its path. A command that fails any check, or
/// names a program that is not there, runs under bash, so "command not found" and its
/// exit status 127 read as they always have.
struct DirectCommand: Equatable {
  let executable: String
  let arguments: [String]
  let environment: [String: String]

  init?(_ request: ShellCommandRequest) {
    let command = request.command
    guard command.utf8.allSatisfy(Self.isPlain) else { return nil }
    let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    guard let name = words.first, !name.contains("=") else { return nil }
    guard !Self.shellWords.contains(name) else { return nil }
    if name == "echo", words.contains(where: { $0 == "--help" || $0 == "--version" }) { return nil }
    let environment = request.environment
    // Bash expands a `~` entry of PATH, which exec's search would not.
    guard let path = environment["PATH"], !path.split(separator: ":").contains(where: { $0.hasPrefix("~") })
    else { return nil }
    for key in environment.keys
    where key == "BASH_ENV" || key == "SHELLOPTS" || key == "BASHOPTS" || key.hasPrefix("BASH_FUNC_") {
      return nil
    }
    guard let executable = Self.find(name, path: path, workingDirectory: request.workingDirectory)
    else { return nil }
    self.executable = executable
    self.arguments = Array(words.dropFirst())
    var passed = environment
    passed["PWD"] = request.workingDirectory
    passed["SHLVL"] = environment["SHLVL"] ?? "0"
    passed["_"] = executable
    self.environment = passed
  }

  private static func isPlain(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"):
      true
    case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
      UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "+"), UInt8(ascii: "@"),
      UInt8(ascii: "%"), UInt8(ascii: "="):
      true
    default: false
    }
  }

  /// Bash 5.2's keywords and builtins (`compgen -k`, `compgen -b`) but the three whose
  /// programs behave the same.
  static let shellWords: Set<String> = [
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done",
    "in", "function", "time", "coproc", ".", ":", "[", "alias", "bg", "bind", "break", "builtin",
    "caller", "cd", "command", "compgen", "complete", "compopt", "continue", "declare", "dirs",
    "disown", "enable", "eval", "exec", "exit", "export", "fc", "fg", "getopts", "hash", "help",
    "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd",
    "read", "readarray", "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test",
    "times", "trap", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
  ]

  /// Where bash would find `name`: itself when it holds a `/` (relative to the working
  /// directory), else the first executable regular file on `path`, an empty entry being
  /// the working directory.
  private static func find(_ name: String, path: String, workingDirectory: String) -> String? {
    func absolute(_ file: String) -> String {
      file.hasPrefix("/") ? file : workingDirectory + "/" + file
    }
    if name.contains("/") {
      let file = absolute(name)
      return runsAsIs(file) ? file : nil
    }
    for entry in path.split(separator: ":", omittingEmptySubsequences: false) {
      let folder = entry.isEmpty ? workingDirectory : absolute(String(entry))
      let candidate = folder + "/" + name
      guard isExecutableFile(candidate) else { continue }
      return startsByItself(candidate) ? candidate : nil
    }
    return nil
  }

  private static func runsAsIs(_ file: String) -> Bool {
    isExecutableFile(file) && startsByItself(file)
  }

  private static func isExecutableFile(_ file: String) -> Bool {
    var info = stat()
    return stat(file, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && access(file, X_OK) == 0
  }

  /// Whether the kernel can start the file by itself: `#!` or ELF.
  private static func startsByItself(_ file: String) -> Bool {
    let fd = open(file, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var magic = [UInt8](repeating: 0, count: 4)
    let count = read(fd, &magic, 4)
    if count >= 2, magic[0] == UInt8(ascii: "#"), magic[1] == UInt8(ascii: "!") { return true }
    return count == 4 && magic == [0x7F, UInt8(ascii: "E"), UInt8(ascii: "L"), UInt8(ascii: "F")]
  }
}
