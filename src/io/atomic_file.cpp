#include "densenet/io/atomic_file.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace densenet {

namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view contents) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, "cannot write '", path, "': ", std::strerror(errno));
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      TORCH_CHECK(false, "cannot write '", path, "': ", std::strerror(error));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    TORCH_CHECK(false, "cannot write '", path, "': ", std::strerror(error));
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    TORCH_CHECK(false, "cannot replace '", path, "': ", std::strerror(error));
  }
  // Make the rename itself durable; failing to open the directory is not worth an error.
  const int dir_fd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::string read_file(const std::string& path) {
  struct stat info {};
  TORCH_CHECK(::stat(path.c_str(), &info) == 0, "cannot read '", path, "': ", std::strerror(errno));
  TORCH_CHECK(!S_ISDIR(info.st_mode), "cannot read '", path, "': it is a directory");
  std::ifstream stream(path, std::ios::binary);
  TORCH_CHECK(stream.good(), "cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  TORCH_CHECK(!stream.bad(), "cannot read '", path, "': I/O error");
  return buffer.str();
}

}  // namespace densenet
