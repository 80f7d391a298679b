# `cmake --install` and find_package(densenet): the library, its public headers, an exported
# target densenet::densenet and a version file. A consumer needs only
#   find_package(densenet 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE densenet::densenet)
# (tests/consumer is such a project, built by the ctest test `consumer.find_package`).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(DENSENET_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/densenet)
# densenet is static: its private dependencies (and the warnings interface it links) are
# part of its link interface, so they are exported or found again by densenetConfig.cmake.
install(TARGETS densenet densenet_warnings EXPORT densenetTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/densenet DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS densenet_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT densenetTargets NAMESPACE densenet:: DESTINATION ${DENSENET_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/densenetConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/densenetConfig.cmake
                              INSTALL_DESTINATION ${DENSENET_CMAKE_DIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/densenetConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/densenetConfig.cmake
              ${PROJECT_BINARY_DIR}/densenetConfigVersion.cmake
        DESTINATION ${DENSENET_CMAKE_DIR})
