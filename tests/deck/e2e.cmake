# End-to-end deck tests through the r1hpc executable (included from tests/CMakeLists.txt).

# Every bad deck: exit code 2, the error at its file:line, nothing written (run_bad_deck.sh).
file(GLOB r1hpc_bad_decks CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/bad/*.deck)
foreach(deck IN LISTS r1hpc_bad_decks)
  get_filename_component(name ${deck} NAME_WE)
  file(STRINGS ${deck} world REGEX "^# world: [0-9]+$")
  string(REPLACE "# world: " "" world "${world}")
  if(NOT world)
    set(world 1)
  endif()
  add_test(NAME deck_bad_${name}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_bad_deck.sh $<TARGET_FILE:r1hpc> ${MPIEXEC_EXECUTABLE}
                   bad/${name}.deck ${CMAKE_CURRENT_BINARY_DIR}/deck_e2e/${name}
           WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
  set(labels e2e)
  if(world GREATER 1)
    set(labels "e2e;mpi")
  endif()
  set_tests_properties(deck_bad_${name} PROPERTIES LABELS "${labels}" PROCESSORS ${world} TIMEOUT 120
                       ENVIRONMENT "${R1HPC_MPI_TEST_ENV}")
endforeach()

# Good decks: the reference prints, an example pipeline deck resolves on the ranks it is written for,
# and a deck whose stage is self_check runs it.
add_test(NAME deck_help_deck COMMAND $<TARGET_FILE:r1hpc> --help-deck)
set_tests_properties(deck_help_deck PROPERTIES PASS_REGULAR_EXPRESSION "\n\\[model\\] [^\n]*\n(  [^\n]*\n)*  n_routed_experts = 8 ")
add_test(NAME deck_dry_run_pipeline_np2
         COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe $<TARGET_FILE:r1hpc> --dry-run
                 inputs/pipeline/00_pretrain_tiny.deck --set train.log_every=5
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deck_dry_run_pipeline_np2 PROPERTIES LABELS "e2e;mpi" PROCESSORS 2 PASS_REGULAR_EXPRESSION
                     "data = 0 +# inputs/pipeline/00_pretrain_tiny.deck:14\n.*log_every = 5 +# --set train.log_every=5\n")
add_test(NAME deck_quickstart_self_check COMMAND $<TARGET_FILE:r1hpc> inputs/quickstart/self_check.deck
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deck_help_deck deck_quickstart_self_check PROPERTIES LABELS e2e)
set_tests_properties(deck_help_deck deck_dry_run_pipeline_np2 deck_quickstart_self_check PROPERTIES
                     ENVIRONMENT "${R1HPC_MPI_TEST_ENV}" TIMEOUT 300)
